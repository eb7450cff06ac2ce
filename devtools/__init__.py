"""Development rigs, not part of the product (not in the wheel or the image): the Twilio
stand-in, the local stack of `make run`, the phone simulator.
"""
