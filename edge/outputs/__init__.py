"""Outputs of the service: GPIO, status web server, MQTT (each exposes `async def serve(hub, stop)`)."""
