"""The ``bastion`` command: one module per command group."""
