from lockgate.controller.cli import entry

entry()
