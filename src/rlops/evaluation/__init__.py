"""Pre-deployment validation: off-policy evaluation, the scenario stress suite, resource budgets, and gates."""
