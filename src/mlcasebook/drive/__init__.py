"""Case 3 — Autopilot: perception, end-to-end driving from pixels (PilotNet), RL with safety/comfort/efficiency."""
