"""The ``ultra`` command line: thin commands over library functions."""
