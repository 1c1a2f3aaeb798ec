"""MedTrack Edge: an edge box that raises distress alarms from facial expression and voice."""

__version__ = "0.1.0"
