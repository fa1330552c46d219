"""Fleets: one migration set rolled out to many databases in waves (see lockgate.controller.fleet.run)."""
