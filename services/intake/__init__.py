"""intake: the stateless edge that turns every channel's submission into one ticket shape."""
