"""Config.load: defaults, precedence of the environment over flags, and a ConfigError naming every bad variable."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lambda_supervisor.shared.protocol import LAMBDA_RESPONSE_LIMIT_BYTES
from lambda_supervisor.supervisor import config as config_module
from lambda_supervisor.supervisor.config import (
    DEFAULT_MEMORY_SIZE_MB,
    SETTINGS,
    SUPERVISOR_RESERVE_MB,
    Config,
    ConfigError,
    Setting,
)

#: An existing directory that does not depend on a per-test fixture (hypothesis tests cannot use tmp_path).
HERE = Path(__file__).resolve().parent


def required(task_root: Path = HERE) -> dict[str, str]:
    return {"AWS_LAMBDA_RUNTIME_API": "127.0.0.1:9001", "_HANDLER": "app.handler", "LAMBDA_TASK_ROOT": str(task_root)}


def settings_parsed_by(*parsers: object) -> list[Setting]:
    return [setting for setting in SETTINGS if setting.parse in parsers]


POSITIVE_INTS = settings_parsed_by(config_module._positive_int)
NON_NEGATIVE_INTS = settings_parsed_by(config_module._non_negative_int)
INTEGER_SETTINGS = POSITIVE_INTS + NON_NEGATIVE_INTS
FLOAT_SETTINGS = [s for s in SETTINGS if s.parse in (config_module._positive_float,
                                                      getattr(config_module, "_non_negative_float", None))]


def test_the_settings_table_covers_the_config_fields() -> None:
    assert len({s.variable for s in SETTINGS}) == len(SETTINGS)
    assert len(POSITIVE_INTS) >= 4
    assert len(NON_NEGATIVE_INTS) >= 2
    assert FLOAT_SETTINGS


# -- defaults and precedence -----------------------------------------------------------------------------------


def test_defaults(tmp_path: Path) -> None:
    config = Config.load(required(tmp_path))
    assert config.runtime_api == "127.0.0.1:9001"
    assert config.handler == "app.handler"
    assert config.task_root == str(tmp_path.resolve())
    assert config.function_name == "function"
    assert config.function_version == "$LATEST"
    assert config.memory_size_mb == DEFAULT_MEMORY_SIZE_MB == 3008
    assert config.max_rss_mb == 3008 - SUPERVISOR_RESERVE_MB
    assert config.max_rss_bytes == config.max_rss_mb * 1024 * 1024
    assert config.log_group_name == ""
    assert config.max_invocations == 0
    assert config.max_response_bytes == LAMBDA_RESPONSE_LIMIT_BYTES
    assert config.max_frame_payload_bytes > config.max_response_bytes
    assert config.init_timeout_s == 120.0
    assert config.memory_poll_ms == 20
    assert config.shutdown_grace_ms == 500
    assert config.timeout_margin_ms == 150
    assert config.api_retry_s == 10.0
    assert config.log_level == "INFO"


def test_every_fixed_default_is_the_declared_one(tmp_path: Path) -> None:
    config = Config.load(required(tmp_path))
    for setting in SETTINGS:
        if setting.required or callable(setting.default) or setting.field == "task_root":
            continue
        expected = setting.default
        if isinstance(expected, str) and setting.parse is not str:
            expected = setting.parse(expected)
        assert getattr(config, setting.field) == expected, setting.variable


def test_task_root_defaults_to_the_working_directory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    environ = required()
    del environ["LAMBDA_TASK_ROOT"]
    assert Config.load(environ).task_root == str(tmp_path.resolve())


def test_the_environment_wins_over_flags(tmp_path: Path) -> None:
    environ = {**required(tmp_path), "LAMBDA_SUPERVISOR_MAX_INVOCATIONS": "3", "AWS_LAMBDA_FUNCTION_NAME": "env-fn"}
    flags = {
        "LAMBDA_SUPERVISOR_MAX_INVOCATIONS": "7",
        "AWS_LAMBDA_FUNCTION_NAME": "flag-fn",
        "_HANDLER": "flag.handler",
        "LAMBDA_SUPERVISOR_LOG_LEVEL": "debug",
    }
    config = Config.load(environ, flags)
    assert config.max_invocations == 3
    assert config.function_name == "env-fn"
    assert config.handler == "app.handler"
    # where the environment is silent, the flag applies (and is validated and normalised like the environment)
    assert config.log_level == "DEBUG"


def test_flags_supply_what_the_environment_lacks(tmp_path: Path) -> None:
    environ = required(tmp_path)
    del environ["_HANDLER"]
    config = Config.load(environ, {"_HANDLER": "  cmd.handler  ", "LAMBDA_SUPERVISOR_MAX_RSS_MB": "99"})
    assert config.handler == "cmd.handler"
    assert config.max_rss_mb == 99


def test_an_empty_environment_value_falls_back_to_the_flag_then_the_default(tmp_path: Path) -> None:
    environ = {**required(tmp_path), "LAMBDA_SUPERVISOR_MEMORY_POLL_MS": ""}
    assert Config.load(environ).memory_poll_ms == 20
    assert Config.load(environ, {"LAMBDA_SUPERVISOR_MEMORY_POLL_MS": "5"}).memory_poll_ms == 5


def test_a_bad_flag_is_reported_like_a_bad_variable(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="LAMBDA_SUPERVISOR_MAX_INVOCATIONS"):
        Config.load(required(tmp_path), {"LAMBDA_SUPERVISOR_MAX_INVOCATIONS": "many"})


def test_values_are_parsed(tmp_path: Path) -> None:
    config = Config.load({
        **required(tmp_path),
        "LAMBDA_SUPERVISOR_INIT_TIMEOUT_S": "2.5",
        "LAMBDA_SUPERVISOR_MAX_RESPONSE_BYTES": " 1024 ",
        "LAMBDA_SUPERVISOR_LOG_LEVEL": " warning ",
        "_HANDLER": "  dir/app.handler\n",
        "AWS_LAMBDA_RUNTIME_API": "[::1]:9001",
    })
    assert config.init_timeout_s == 2.5
    assert config.max_response_bytes == 1024
    assert config.log_level == "WARNING"
    assert config.handler == "dir/app.handler"
    assert config.runtime_api == "[::1]:9001"


# -- the derived hard memory limit -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("memory", "max_rss"),
    [("128", 80), ("1024", 1024 - SUPERVISOR_RESERVE_MB), ("10240", 10240 - SUPERVISOR_RESERVE_MB), ("64", 32)],
)
def test_max_rss_is_derived_from_the_memory_size(tmp_path: Path, memory: str, max_rss: int) -> None:
    config = Config.load({**required(tmp_path), "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": memory})
    assert config.memory_size_mb == int(memory)
    assert config.max_rss_mb == max_rss
    assert 0 < config.max_rss_mb < config.memory_size_mb


def test_a_derived_max_rss_is_as_valid_as_an_explicit_one(tmp_path: Path) -> None:
    # LAMBDA_SUPERVISOR_MAX_RSS_MB=0 is refused, so the derived default must never be 0 either
    config = Config.load({**required(tmp_path), "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "1"})
    assert config.max_rss_mb >= 1


def test_max_rss_for_128_and_1024_mb(tmp_path: Path) -> None:
    assert Config.load({**required(tmp_path), "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "128"}).max_rss_mb == 80
    assert Config.load({**required(tmp_path), "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "1024"}).max_rss_mb == 976


def test_max_rss_derives_from_a_memory_size_given_as_a_flag(tmp_path: Path) -> None:
    config = Config.load(required(tmp_path), {"AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "256"})
    assert config.max_rss_mb == 256 - SUPERVISOR_RESERVE_MB


def test_an_explicit_max_rss_wins_over_the_derived_one(tmp_path: Path) -> None:
    environ = {**required(tmp_path), "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "1024", "LAMBDA_SUPERVISOR_MAX_RSS_MB": "300"}
    assert Config.load(environ).max_rss_mb == 300


# -- invalid values --------------------------------------------------------------------------------------------


def _bad_values() -> list[tuple[str, str]]:
    cases = [(s.variable, text) for s in POSITIVE_INTS for text in ("0", "-1", "abc", "1.5", "  ", "1e3")]
    cases += [(s.variable, text) for s in NON_NEGATIVE_INTS for text in ("-1", "ten", "0x10", "9" * 5000)]
    cases += [(s.variable, text) for s in FLOAT_SETTINGS for text in ("-1", "nan", "inf", "soon")]
    cases += [(s.variable, "0") for s in SETTINGS if s.parse is config_module._positive_float]
    cases += [
        ("LAMBDA_SUPERVISOR_LOG_LEVEL", "verbose"),
        ("LAMBDA_SUPERVISOR_LOG_LEVEL", "INFO,DEBUG"),
        ("AWS_LAMBDA_RUNTIME_API", "localhost"),
        ("AWS_LAMBDA_RUNTIME_API", "http://127.0.0.1:9001"),
        ("AWS_LAMBDA_RUNTIME_API", "127.0.0.1:"),
        ("AWS_LAMBDA_RUNTIME_API", ":9001"),
        ("AWS_LAMBDA_RUNTIME_API", "127.0.0.1:9001/2018-06-01"),
        ("AWS_LAMBDA_RUNTIME_API", "my host:9001"),
        ("AWS_LAMBDA_RUNTIME_API", "127.0.0.1:123456"),
        ("AWS_LAMBDA_RUNTIME_API", "::1:9001"),
        ("_HANDLER", "   "),
        ("LAMBDA_SUPERVISOR_TIMEOUT_MARGIN_MS", "-1"),
        ("LAMBDA_SUPERVISOR_TIMEOUT_MARGIN_MS", "soon"),
        ("LAMBDA_SUPERVISOR_TIMEOUT_MARGIN_MS", "10001"),
    ]
    return cases


@pytest.mark.parametrize(("variable", "value"), _bad_values())
def test_an_invalid_value_names_its_variable(variable: str, value: str) -> None:
    with pytest.raises(ConfigError) as excinfo:
        Config.load({**required(), variable: value})
    message = str(excinfo.value)
    assert message.startswith(variable), message
    assert excinfo.value.variable == variable
    assert isinstance(excinfo.value, ValueError)


def test_a_missing_task_root_names_its_variable(tmp_path: Path) -> None:
    missing = tmp_path / "no-such-dir"
    with pytest.raises(ConfigError, match=r"^LAMBDA_TASK_ROOT") as excinfo:
        Config.load(required(missing))
    assert "no-such-dir" in str(excinfo.value)


def test_a_task_root_that_is_a_file_is_refused(tmp_path: Path) -> None:
    (tmp_path / "app.py").write_text("")
    with pytest.raises(ConfigError, match=r"^LAMBDA_TASK_ROOT"):
        Config.load(required(tmp_path / "app.py"))


@pytest.mark.parametrize("variable", ["_HANDLER", "AWS_LAMBDA_RUNTIME_API"])
def test_a_missing_required_variable_is_named(variable: str) -> None:
    environ = required()
    del environ[variable]
    with pytest.raises(ConfigError, match=rf"^{variable} is not set") as excinfo:
        Config.load(environ)
    assert excinfo.value.variable == variable
    with pytest.raises(ConfigError, match=rf"^{variable}"):
        Config.load({**environ, variable: ""})


def test_a_bad_memory_size_is_blamed_not_the_derived_limit() -> None:
    with pytest.raises(ConfigError) as excinfo:
        Config.load({**required(), "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "lots"})
    assert str(excinfo.value).startswith("AWS_LAMBDA_FUNCTION_MEMORY_SIZE")
    assert "LAMBDA_SUPERVISOR_MAX_RSS_MB" not in str(excinfo.value)


# -- any text ----------------------------------------------------------------------------------------------------

_numeric_text = st.one_of(
    st.text(max_size=30),
    st.from_regex(r"\A\s?[-+]?\d{1,12}(\.\d{0,3})?([eE][-+]?\d{1,3})?\s?\Z"),
    st.integers(-(10**20), 10**20).map(str),
    st.sampled_from(["nan", "inf", "-inf", "1_000", "0", "-0", "٣", "0x1f", "1e309", "9" * 4400]),
)


@settings(max_examples=200, deadline=None)
@given(setting=st.sampled_from(INTEGER_SETTINGS + FLOAT_SETTINGS), text=_numeric_text)
def test_any_text_for_a_numeric_setting_parses_or_is_a_config_error(setting: Setting, text: str) -> None:
    try:
        config = Config.load({**required(), setting.variable: text})
    except ConfigError as error:  # anything else propagates and fails the test
        assert str(error).startswith(setting.variable)
        return
    value = getattr(config, setting.field)
    if setting in INTEGER_SETTINGS:
        assert type(value) is int
        assert value > 0 if setting in POSITIVE_INTS else value >= 0
    else:
        assert type(value) is float
        assert 0 <= value < float("inf")
        if setting.parse is config_module._positive_float:
            assert value > 0
    assert config.max_rss_mb > 0


@pytest.mark.parametrize("address", ["127.0.0.1:99999", "127.0.0.1:0", "localhost:\u0661\u0662", "127.0.0.1"])
def test_runtime_api_port_must_be_an_ascii_port_number(address: str) -> None:
    with pytest.raises(ConfigError, match="AWS_LAMBDA_RUNTIME_API"):
        Config.load({"AWS_LAMBDA_RUNTIME_API": address, "_HANDLER": "app.handler"})


@pytest.mark.parametrize(("text", "margin"), [("0", 0), ("250", 250), ("10000", 10_000)])
def test_the_timeout_margin_takes_zero_up_to_ten_seconds(text: str, margin: int) -> None:
    assert Config.load({**required(), "LAMBDA_SUPERVISOR_TIMEOUT_MARGIN_MS": text}).timeout_margin_ms == margin
