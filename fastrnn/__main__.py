from fastrnn.cli import entry

entry()
