"""Backend adapters: drive one ComfyUI or A1111 instance per GPU through its real API."""
