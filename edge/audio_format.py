"""The audio format the whole box shares: 16 kHz mono (int16 from capture, float32 in the models).

Capture (``edge.capture.microphone``), the voice front end (``edge.inference.voice_features``), the
stages and the scripts import ``SAMPLE_RATE`` from here; capture stays free of inference imports.
"""

SAMPLE_RATE = 16000
