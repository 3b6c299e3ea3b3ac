# env.py runs migrations when Alembic loads it; importing it to look for doctests would fail.
collect_ignore = ["env.py"]
