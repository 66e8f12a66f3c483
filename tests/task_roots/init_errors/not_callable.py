handler = "I am a string, not a function"
