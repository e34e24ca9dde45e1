"""Model conversion (Keras -> TFLite) and inspection of .tflite files."""
