// Region phrases for grounding: for each object of a scene, a definite phrase that picks it out
// ("the small green triangle", or a shorter unique one such as "the triangle"), its pixel
// bounding box in the rendered image, and the box's crop resampled to a fixed size. Boxes come
// from the shape's exact extent (shapes.ts), so the crop contains the whole object.

import { Rng } from './rng';
import { Scene, objectBox } from './scene';
import { nounPhrase, uniqueParts } from './referring';
import { cropResize } from './image_ops';

export interface RegionPhrase {
  objectIndex: number;
  phrase: string;
  /** Pixel box [x0, y0, x1, y1): columns x0..x1-1, rows y0..y1-1 of the image. */
  box: [number, number, number, number];
  /** The box resampled to [3, cropSize, cropSize]. */
  crop: Float32Array;
  cropSize: number;
}

/** One phrase + box + crop per object of the scene (image = the scene rendered at imageSize). */
export function regionPhrasesFor(rng: Rng, scene: Scene, image: Float32Array, imageSize: number, cropSize: number): RegionPhrase[] {
  return scene.objects.map((o, k) => {
    const parts = rng.chance(0.5) ? { size: o.size, color: o.color, shape: o.shape } : uniqueParts(scene, k, ['shape', 'color', 'size']);
    const box = objectBox(o, imageSize);
    const crop = cropResize(image, 3, imageSize, { left: box[0], top: box[1], width: box[2] - box[0], height: box[3] - box[1] }, cropSize);
    return { objectIndex: k, phrase: 'the ' + nounPhrase(rng, parts), box, crop, cropSize };
  });
}
