"""`python -m lindivc.cli`: the same as the `lindivc` command."""
from . import main

main()
