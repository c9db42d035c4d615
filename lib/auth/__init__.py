"""Authentication: HS256 JWTs the Supabase way (``tokens``) and local users (``users``)."""
