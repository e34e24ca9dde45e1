"""Pruning: magnitude (threshold) pruning with fine-tuning, structured channel and block
removal, nested-model flattening, and the MAC count."""
