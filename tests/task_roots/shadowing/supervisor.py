NAME = "user supervisor module"
