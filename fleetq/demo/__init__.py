"""``fleetq demo``: a whole simulated fleet on one laptop, with no GPU, Redis or ComfyUI needed."""
