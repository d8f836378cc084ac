import { useEffect, useRef } from 'react';
import uPlot from 'uplot';
import 'uplot/dist/uPlot.min.css';
import { axisColors, useTheme } from './theme.js';

export interface ChartSeries {
  label: string;
  color: string;
  /** Drawn as steps (counts over time) or bars (one value per x). */
  kind: 'step' | 'bars';
}

/** A uPlot chart that follows its container's width. `data[0]` is x in seconds. */
export function Chart({
  title,
  series,
  data,
  yLabel,
  empty,
  height = 180,
}: {
  title: string;
  series: ChartSeries[];
  data: uPlot.AlignedData;
  yLabel: string;
  /** Shown over the chart when there is nothing to plot. */
  empty?: string | undefined;
  height?: number;
}) {
  const box = useRef<HTMLDivElement>(null);
  const plot = useRef<uPlot | null>(null);
  const key = series.map((s) => s.label + s.kind).join('|');
  // Rebuilt with the theme's axis colours when the theme changes.
  const theme = useTheme();

  useEffect(() => {
    const el = box.current;
    if (!el) return;
    const opts: uPlot.Options = {
      width: Math.max(200, el.clientWidth),
      height,
      legend: { show: true, live: false },
      cursor: { drag: { x: false, y: false } },
      scales: {
        x: {
          time: true,
          // At least a minute wide, a little padding so bars at the ends show whole; an empty chart shows the last 15 min.
          range: (_u, min, max) => {
            if (min === null || max === null || !Number.isFinite(min) || !Number.isFinite(max)) {
              const now = Date.now() / 1000;
              return [now - 900, now];
            }
            const lo = Math.min(min, max - 60);
            const pad = (max - lo) * 0.03;
            return [lo - pad, max + pad];
          },
        },
        y: { range: (_u, _min, max) => [0, Math.max(1, (max ?? 0) * 1.15)] },
      },
      axes: [
        { ...axisColors() },
        {
          ...axisColors(),
          label: yLabel,
          labelSize: 18,
          size: 48,
        },
      ],
      series: [
        {},
        ...series.map((s) => ({
          label: s.label,
          stroke: s.color,
          width: s.kind === 'bars' ? 0 : 2,
          fill: `${s.color}${s.kind === 'bars' ? 'cc' : '22'}`,
          paths:
            s.kind === 'bars' ? uPlot.paths.bars?.({ size: [0.6, 24], align: 0 }) : uPlot.paths.stepped?.({ align: 1 }),
          points: { show: false },
        })),
      ],
    };
    const u = new uPlot(opts, data, el);
    plot.current = u;
    const ro = new ResizeObserver(() => u.setSize({ width: Math.max(200, el.clientWidth), height }));
    ro.observe(el);
    return () => {
      ro.disconnect();
      u.destroy();
      plot.current = null;
    };
    // Rebuilt only when the series change; data updates go through setData below.
  }, [key, height, yLabel, theme]);

  useEffect(() => {
    plot.current?.setData(data);
  }, [data]);

  return (
    <figure className="chart">
      <figcaption>{title}</figcaption>
      <div className="chart-wrap">
        <div ref={box} className="chart-box" role="img" aria-label={empty ? `${title}: ${empty}` : title} />
        {empty && (
          <p className="chart-empty" aria-hidden="true">
            {empty}
          </p>
        )}
      </div>
    </figure>
  );
}
