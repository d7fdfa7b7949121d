"""Power sensors behind one interface (``base.Sensor``)."""
