"""Model inference: TFLite runtime loading, face detection and alignment, face and voice
classification, sound events, and the voice front end (log-mel windows, speech gates)."""
