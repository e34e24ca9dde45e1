"""Data: sources (`loaders`), preprocessing recorded for the device, and the splits."""
