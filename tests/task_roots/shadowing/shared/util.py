def where():
    return "user shared.util"
