"""Word n-gram language models: modified Kneser-Ney estimation (ARPA) and decoding lexicons."""
