NAME = "user shared package"
