"""Shadow traffic: copies of a share of stable's requests sent to a candidate version that
answers no one, and how far the two agree, counted for every replica."""
