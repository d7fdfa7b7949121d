"""What the tests stand on, beside the tests themselves: fakes of real systems at least
as strict as them (nodes, a broker's runner, an I2C bus, a log server), the judges we did
not write (the IOTA SDK, Go's sumdb), pytest fixtures, and daemon runners.

The tests import them as ``support.<module>`` (pytest puts ``tests/`` on ``sys.path``);
so do the ``bench/`` scripts, which put ``tests/`` there themselves. Inside the package
they import each other relatively.
"""
