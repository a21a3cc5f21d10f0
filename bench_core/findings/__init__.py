"""What results mean: claims, leaderboards, labels, the robustness contrast, fragility, two runs compared.
Imports the stages below it."""
