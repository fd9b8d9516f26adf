"""The sandbox: recordings, replay, simulation, listening and diagnosis of webhook deliveries."""
