"""Fleet dispatch optimization: scenarios, the Pyomo MILP, HiGHS solves and results."""
