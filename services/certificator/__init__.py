"""The certificator: verifies a user's access token and signs a short-lived SSH certificate for them."""
