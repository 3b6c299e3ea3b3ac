from monitor.cli import app

app()
