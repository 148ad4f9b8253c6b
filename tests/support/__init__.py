"""What the tests share: wiring a handler's stage on test clients, fakes of the ports, builders of events."""
