import { StrictMode } from 'react';
import { createRoot } from 'react-dom/client';
import { App } from './App.js';
import './styles.css';
import { applyTheme } from './theme.js';

const root = document.getElementById('root');
if (!root) throw new Error('index.html has no #root');
// Before the first paint, so a dark theme never flashes light.
applyTheme();
createRoot(root).render(
  <StrictMode>
    <App />
  </StrictMode>,
);
