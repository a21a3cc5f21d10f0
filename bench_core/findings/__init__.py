"""What results mean: claims, leaderboards, labels, the robustness contrast, fragility. Imports the stages below it."""
