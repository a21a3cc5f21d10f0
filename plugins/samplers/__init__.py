"""Samplers: Langevin family (``langevin``: ULA) and diffusion family (``ddpm``, ``ddim``, ``annealed_langevin``,
``cld``). Each module holds a pure, explicitly seeded update function citing its algorithm and the
factory class registered under the sampler's name; ``schedules`` and ``ou_diffusion`` are what the
diffusion samplers share."""
