"""Reading a rig: camera sources (videos / image folders), synchronization, calibration, preprocessing to model
inputs. Knows nothing about the model or the reconstruction."""
