"""Local fakes of the services Tocsin talks to, served on 127.0.0.1 for the tests."""
