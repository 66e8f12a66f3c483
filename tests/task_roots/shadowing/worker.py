NAME = "user worker module"
