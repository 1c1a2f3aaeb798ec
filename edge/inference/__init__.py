"""Model inference: TFLite runtime loading, face detection, face and voice classification."""
