"""The media layer: probe files, decode them on the file-time clock, remux them losslessly."""
