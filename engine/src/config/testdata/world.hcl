# Simulated world for the test fixture (contents are the simulator's business).
