module lambda-supervisor/bench/go_runtime_api

go 1.19
