"""The conda tier: environment.yml solved with py-rattler into conda-lock.yml, installed from it."""
