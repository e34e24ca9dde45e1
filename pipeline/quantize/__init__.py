"""Quantization: full-integer post-training quantization and its verification on runtimes."""
