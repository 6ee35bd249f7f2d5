"""tfds builders over the files users bring (`manual_dir`).

Importing this package registers the builders with tfds:
`emojax_facial_r1`, `emojax_raf_db`, `emojax_affectnet`, `emojax_mer`,
`emojax_dair_emotion`, `emojax_emotion_cot`, `emojax_facs_synth`,
`emojax_prosody_synth`, and the video builders `emojax_facial_r1_video`,
`emojax_facs_clips`.
"""
