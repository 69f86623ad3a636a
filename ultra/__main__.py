"""``python -m ultra`` runs the CLI."""

from ultra.cli.main import app

app()
