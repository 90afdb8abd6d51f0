from symnet.cli import entry

entry()
