"""The summarizer service: writes summaries with a generative model and streams them."""
