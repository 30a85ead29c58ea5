"""`wavegrad-ui`: a local Gradio app whose tabs are thin layers over the public API of `wavegrad` and `voiceconv`."""
