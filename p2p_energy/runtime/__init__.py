"""The running daemon: the sampling loop and its rounds, the payer, the recorder, and
the construction of the sensor and wallet a config names."""
