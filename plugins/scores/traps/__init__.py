"""The paper's traps: score estimates with small L2 error that keep Langevin dynamics away from the target
(Cao, Chen, Sridharan, Wu 2026, Theorems 1, 7 and 11), with the tail probabilities that certify them."""
