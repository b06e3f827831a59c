// AWSomePets web shop: catalogue, cart, checkout and an order's live progress over the WebSocket.
// Plain ES module, no build step. Views are picked by the URL hash:
//   #/            the shop (catalogue and cart)        #/cart   the same, with the cart in focus
//   #/checkout    invoice, address and card details   #/order/ID  the order's progress, then its outcome
// An order's {orderId, clientCallbackUrl} is kept in localStorage, so a reload (or a lost connection) resumes
// the same order: on every (re)connect the Notifier replays every event from seq 1, and the page rebuilds the
// whole progress from that replay.

import { $, el } from '/dom.js';

const CART_KEY = 'awsomepets.cart.v1';
const ORDERS_KEY = 'awsomepets.orders.v1';
const PENDING_KEY = 'awsomepets.pending.v1';
const MAX_PER_LINE = 10; // the shop's limit per pet and order (the saga refuses more)
const STEP_PACE_MS = 450; // events are shown one after another, so a fast saga still reads as steps
const CATALOGUE_REFRESH_MS = 10000;

// ---------------------------------------------------------------------------------------------------------------
// Small helpers

const cents = (dollars) => Math.round(Number(dollars) * 100);
const money = (amountCents) =>
  '$' + (amountCents / 100).toLocaleString('en-US', { minimumFractionDigits: 2, maximumFractionDigits: 2 });
const slug = (title) => String(title).toLowerCase().replace(/[^a-z0-9]+/g, '-');

function loadJSON(key, fallback) {
  try {
    const raw = localStorage.getItem(key);
    return raw ? JSON.parse(raw) : fallback;
  } catch {
    return fallback;
  }
}
function saveJSON(key, value) {
  try {
    if (value === null || value === undefined) localStorage.removeItem(key);
    else localStorage.setItem(key, JSON.stringify(value));
  } catch {
    /* private mode or full: the page still works, only without resuming */
  }
}

function newKey() {
  if (globalThis.crypto?.randomUUID) return crypto.randomUUID();
  const bytes = new Uint8Array(16);
  crypto.getRandomValues(bytes);
  return Array.from(bytes, (b) => b.toString(16).padStart(2, '0')).join('');
}

/** Shipping as the saga computes it: (last digit of the post code) / 2 + 2 dollars; null if it has none. */
function shippingCents(postCode) {
  const last = String(postCode ?? '').trim().slice(-1);
  if (!/^[0-9]$/.test(last)) return null;
  return Number(last) * 50 + 200;
}

function formatTime(iso) {
  if (!iso) return '';
  const date = new Date(iso);
  return Number.isNaN(date.getTime()) ? iso : date.toLocaleString();
}

const icons = {
  done: '<svg viewBox="0 0 20 20" aria-hidden="true"><path d="M5 10.5l3.2 3.2L15 7" fill="none" stroke="currentColor" stroke-width="2.6" stroke-linecap="round" stroke-linejoin="round"/></svg>',
  failed: '<svg viewBox="0 0 20 20" aria-hidden="true"><path d="M6 6l8 8M14 6l-8 8" fill="none" stroke="currentColor" stroke-width="2.6" stroke-linecap="round"/></svg>',
  undo: '<svg viewBox="0 0 20 20" aria-hidden="true"><path d="M8 5L4 9l4 4" fill="none" stroke="currentColor" stroke-width="2.4" stroke-linecap="round" stroke-linejoin="round"/><path d="M4.5 9H12a4 4 0 0 1 0 8H9" fill="none" stroke="currentColor" stroke-width="2.4" stroke-linecap="round"/></svg>',
  retry: '<svg viewBox="0 0 20 20" aria-hidden="true"><path d="M15.5 8A6 6 0 1 0 16 12" fill="none" stroke="currentColor" stroke-width="2.4" stroke-linecap="round"/><path d="M16 3.5V8h-4.5" fill="none" stroke="currentColor" stroke-width="2.4" stroke-linecap="round" stroke-linejoin="round"/></svg>',
  warn: '<svg viewBox="0 0 20 20" aria-hidden="true"><path d="M10 5v6" stroke="currentColor" stroke-width="2.6" stroke-linecap="round"/><circle cx="10" cy="15" r="1.5" fill="currentColor"/></svg>',
  active: '<span class="spinner" aria-hidden="true"></span>',
};

// ---------------------------------------------------------------------------------------------------------------
// State

const state = {
  catalogue: [], // [{id, title, unitPrice, imageUrl, stock}]
  byId: new Map(),
  catalogueLoaded: false,
  cart: loadJSON(CART_KEY, []).filter((line) => line && typeof line.id === 'string' && line.quantity > 0),
  idempotencyKey: null, // one per checkout attempt: a retried POST after a network error returns the same order
  placing: false,
  follower: null, // the OrderFollower of the order on screen
};

const orders = {
  all: () => loadJSON(ORDERS_KEY, {}),
  get: (orderId) => orders.all()[orderId] ?? null,
  put(record) {
    const all = orders.all();
    all[record.orderId] = record;
    // Keep the 20 newest only.
    const kept = Object.values(all)
      .sort((a, b) => (b.placedAt ?? '').localeCompare(a.placedAt ?? ''))
      .slice(0, 20);
    saveJSON(ORDERS_KEY, Object.fromEntries(kept.map((r) => [r.orderId, r])));
  },
  update(orderId, change) {
    const record = orders.get(orderId);
    if (record) orders.put({ ...record, ...change });
  },
};

// ---------------------------------------------------------------------------------------------------------------
// Catalogue

let catalogueTimer = null;

async function loadCatalogue() {
  const status = $('#catalogue-status');
  try {
    const response = await fetch('/catalogue', { headers: { Accept: 'application/json' }, cache: 'no-store' });
    if (!response.ok) throw new Error(`HTTP ${response.status}`);
    const products = await response.json();
    products.sort((a, b) => a.unitPrice - b.unitPrice || a.title.localeCompare(b.title));
    state.catalogue = products;
    state.byId = new Map(products.map((p) => [p.id, p]));
    state.catalogueLoaded = true;
    status.textContent = '';
    status.hidden = true;
    // Drop cart lines whose pet is gone from the catalogue.
    const before = state.cart.length;
    state.cart = state.cart.filter((line) => state.byId.has(line.id));
    if (state.cart.length !== before) saveCart();
    renderCatalogue();
    renderCart();
    if (!$('#view-checkout').hidden) renderCheckout();
  } catch (error) {
    status.hidden = false;
    status.textContent = state.catalogueLoaded
      ? 'Could not refresh the stock levels; retrying…'
      : 'Could not load the pets. Retrying in a few seconds…';
    status.classList.add('warning-text');
    console.warn('catalogue', error);
  }
}

function scheduleCatalogueRefresh() {
  clearInterval(catalogueTimer);
  catalogueTimer = setInterval(() => {
    if (document.visibilityState === 'visible' && !$('#view-shop').hidden) loadCatalogue();
    else if (!state.catalogueLoaded) loadCatalogue();
  }, CATALOGUE_REFRESH_MS);
}

function cartQuantity(id) {
  return state.cart.find((line) => line.id === id)?.quantity ?? 0;
}
function lineLimit(product) {
  return Math.max(0, Math.min(MAX_PER_LINE, product.stock ?? MAX_PER_LINE));
}

function renderCatalogue() {
  const grid = $('#catalogue');
  grid.setAttribute('aria-busy', 'false');
  const seen = new Set();
  for (const product of state.catalogue) {
    seen.add(product.id);
    let card = grid.querySelector(`[data-product-id="${product.id}"]`);
    if (!card) {
      const id = slug(product.title);
      card = el(
        'li',
        { class: 'card', 'data-testid': `product-${id}`, 'data-product-id': product.id, 'data-title': product.title },
        el('div', { class: 'card-picture' },
          el('img', { src: product.imageUrl, alt: `A ${product.title.toLowerCase()}`, width: 200, height: 200, loading: 'lazy' }),
          el('span', { class: 'in-cart-badge', 'data-testid': 'in-cart', hidden: true })),
        el('div', { class: 'card-body' },
          el('h3', { class: 'card-title', text: product.title }),
          el('p', { class: 'price', 'data-testid': 'price' }),
          el('p', { class: 'stock', 'data-testid': 'stock' }),
          el('button', {
            type: 'button', class: 'btn primary block', 'data-testid': 'add-to-cart',
            'aria-label': `Add ${product.title} to cart`, onclick: () => addToCart(product.id),
          }, 'Add to cart'),
        ),
      );
      grid.append(card);
    }
    // Keep the grid in catalogue order.
    grid.append(card);
    $('[data-testid="price"]', card).textContent = money(cents(product.unitPrice));
    const stock = $('[data-testid="stock"]', card);
    stock.dataset.stock = String(product.stock);
    stock.textContent = product.stock > 0 ? `${product.stock} in stock` : 'Sold out';
    stock.classList.toggle('low', product.stock > 0 && product.stock <= 5);
    const button = $('[data-testid="add-to-cart"]', card);
    const inCart = cartQuantity(product.id);
    const limit = lineLimit(product);
    button.disabled = inCart >= limit;
    button.textContent = product.stock <= 0 ? 'Sold out' : inCart >= limit ? 'Limit reached' : 'Add to cart';
    button.title = inCart >= limit && product.stock > 0 ? `At most ${limit} per order` : '';
    card.classList.toggle('in-cart', inCart > 0);
    const badge = $('[data-testid="in-cart"]', card);
    badge.hidden = inCart === 0;
    badge.textContent = `${inCart} in cart`;
  }
  for (const card of [...grid.children]) if (!seen.has(card.dataset.productId)) card.remove();
}

// ---------------------------------------------------------------------------------------------------------------
// Cart

function saveCart() {
  saveJSON(CART_KEY, state.cart);
}

function setQuantity(id, quantity) {
  const product = state.byId.get(id);
  const limit = product ? lineLimit(product) : MAX_PER_LINE;
  const line = state.cart.find((l) => l.id === id);
  const wanted = Math.max(0, Math.min(limit, quantity));
  if (wanted === 0) state.cart = state.cart.filter((l) => l.id !== id);
  else if (line) line.quantity = wanted;
  else state.cart.push({ id, quantity: wanted });
  saveCart();
  renderCart();
  renderCatalogue();
}

function addToCart(id) {
  setQuantity(id, cartQuantity(id) + 1);
  const line = document.querySelector(`#cart-lines [data-product-id="${id}"]`);
  line?.classList.remove('flash');
  void line?.offsetWidth; // restart the animation
  line?.classList.add('flash');
}

function cartTotals() {
  let items = 0;
  let count = 0;
  for (const line of state.cart) {
    const product = state.byId.get(line.id);
    if (!product) continue;
    items += cents(product.unitPrice) * line.quantity;
    count += line.quantity;
  }
  return { items, count };
}

function renderCart() {
  const list = $('#cart-lines');
  const { items, count } = cartTotals();
  // The lines are drawn anew: keep the keyboard focus on the same button of the same line.
  const focused = document.activeElement;
  const focusLine = list.contains(focused) ? focused.closest('.cart-line')?.dataset.productId : null;
  const focusRole = focusLine ? focused.dataset.testid : null;
  list.replaceChildren(
    ...state.cart
      .filter((line) => state.byId.has(line.id))
      .map((line) => {
        const product = state.byId.get(line.id);
        const limit = lineLimit(product);
        return el(
          'li',
          { class: 'cart-line', 'data-testid': `cart-line-${slug(product.title)}`, 'data-product-id': product.id },
          el('img', { src: product.imageUrl, alt: '', width: 44, height: 44 }),
          el('div', { class: 'cart-line-title' },
            el('strong', { text: product.title }),
            el('span', { class: 'muted small', text: `${money(cents(product.unitPrice))} each` })),
          el('div', { class: 'stepper', role: 'group', 'aria-label': `Quantity of ${product.title}` },
            el('button', {
              type: 'button', class: 'icon-btn', 'data-testid': 'minus', 'aria-label': `One ${product.title} fewer`,
              disabled: line.quantity <= 1, onclick: () => setQuantity(product.id, line.quantity - 1),
            }, '−'),
            el('output', { class: 'qty', 'data-testid': 'qty', 'aria-live': 'polite' }, String(line.quantity)),
            el('button', {
              type: 'button', class: 'icon-btn', 'data-testid': 'plus', 'aria-label': `One more ${product.title}`,
              disabled: line.quantity >= limit, onclick: () => setQuantity(product.id, line.quantity + 1),
            }, '+')),
          el('span', { class: 'line-total', 'data-testid': 'line-total' }, money(cents(product.unitPrice) * line.quantity)),
          el('button', {
            type: 'button', class: 'icon-btn remove', 'data-testid': 'remove', 'aria-label': `Remove ${product.title} from cart`,
            onclick: () => setQuantity(product.id, 0),
          }, '×'),
        );
      }),
  );
  if (focusLine) {
    const line = list.querySelector(`[data-product-id="${focusLine}"]`);
    const target = line?.querySelector(`[data-testid="${focusRole}"]:not(:disabled)`)
      ?? line?.querySelector('button:not(:disabled)') ?? $('#cart');
    target.focus({ preventScroll: true });
  }
  $('#cart-empty').hidden = count > 0;
  $('#cart-total').textContent = money(items);
  $('#cart-bar').hidden = count === 0;
  $('#cart-bar-text').textContent = `${count} ${count === 1 ? 'pet' : 'pets'} · ${money(items)}`;
  $('#cart-count').textContent = String(count);
  $('#checkout-button').disabled = count === 0 || !state.catalogueLoaded;
}

// ---------------------------------------------------------------------------------------------------------------
// Checkout

const fields = {
  address: {
    input: () => $('#address'),
    check: (v) => (!v.trim() ? 'Please enter the street address.' : ''),
  },
  city: {
    input: () => $('#city'),
    check: (v) => (!v.trim() ? 'Please enter the city.' : ''),
  },
  'post-code': {
    input: () => $('#post-code'),
    check: (v) =>
      !v.trim() ? 'Please enter the post code.'
      : shippingCents(v) === null ? 'The post code must end with a digit.' : '',
  },
  cardholder: {
    input: () => $('#cardholder'),
    check: (v) => (!v.trim() ? 'Please enter the name shown on the card.' : ''),
  },
  'card-number': {
    input: () => $('#card-number'),
    check: (v) => {
      const digits = v.replace(/\s+/g, '');
      if (!digits) return 'Please enter the card number.';
      if (!/^\d+$/.test(digits)) return 'The card number can only contain digits.';
      if (digits.length < 12 || digits.length > 19) return 'The card number must have 12 to 19 digits.';
      return '';
    },
  },
  expiry: {
    input: () => $('#expiry'),
    check: (v) => {
      if (!v.trim()) return 'Please enter the expiry date as MM/YY.';
      const match = /^(\d{2})\/(\d{2})$/.exec(v.trim());
      if (!match) return 'Use the format MM/YY, for example 08/27.';
      const month = Number(match[1]);
      if (month < 1 || month > 12) return 'The month must be between 01 and 12.';
      return '';
    },
  },
  ccv: {
    input: () => $('#ccv'),
    check: (v) => (!/^\d{3}$/.test(v.trim()) ? 'The CCV is the 3 digits on the back of the card.' : ''),
  },
};

function validateField(name) {
  const field = fields[name];
  const input = field.input();
  const message = field.check(input.value);
  const error = $(`#${name}-error`);
  error.textContent = message;
  input.setAttribute('aria-invalid', message ? 'true' : 'false');
  input.closest('.field')?.classList.toggle('invalid', Boolean(message));
  return message;
}

/** Groups the digits in fours, keeping the caret after the same digit. */
function formatCardNumber(input) {
  const caretDigits = input.value.slice(0, input.selectionStart ?? input.value.length).replace(/\D/g, '').length;
  const digits = input.value.replace(/\D/g, '').slice(0, 19);
  const formatted = digits.replace(/(\d{4})(?=\d)/g, '$1 ');
  if (formatted === input.value) return;
  input.value = formatted;
  let position = 0;
  for (let seen = 0; position < formatted.length && seen < caretDigits; position++) {
    if (/\d/.test(formatted[position])) seen++;
  }
  if (document.activeElement === input) input.setSelectionRange(position, position);
}

function formatExpiry(input, event) {
  const deleting = event?.inputType?.startsWith('delete');
  let digits = input.value.replace(/\D/g, '').slice(0, 4);
  // "4" can only be April: write it 04.
  if (!deleting && digits.length === 1 && digits > '1') digits = '0' + digits;
  let formatted = digits.length > 2 ? `${digits.slice(0, 2)}/${digits.slice(2)}` : digits;
  if (!deleting && digits.length === 2 && input.value.length <= 2) formatted = digits + '/';
  if (formatted !== input.value) input.value = formatted;
}

function renderCheckout() {
  const body = $('#invoice-lines');
  const rows = [];
  for (const line of state.cart) {
    const product = state.byId.get(line.id);
    if (!product) continue;
    const unit = cents(product.unitPrice);
    rows.push(
      el('tr', { 'data-testid': `invoice-line-${slug(product.title)}` },
        el('td', {}, el('span', { class: 'invoice-pet' },
          el('img', { src: product.imageUrl, alt: '', width: 32, height: 32 }), product.title)),
        el('td', { class: 'num' }, String(line.quantity)),
        el('td', { class: 'num' }, money(unit)),
        el('td', { class: 'num' }, money(unit * line.quantity))),
    );
  }
  body.replaceChildren(...rows);
  const { items } = cartTotals();
  const shipping = shippingCents($('#post-code').value);
  $('#invoice-items').textContent = money(items);
  $('#invoice-shipping').textContent = shipping === null ? '—' : money(shipping);
  $('#shipping-note').textContent = shipping === null ? '(from your post code)' : `(to ${$('#post-code').value.trim()})`;
  $('#invoice-total').textContent = shipping === null ? money(items) + ' + shipping' : money(items + shipping);
}

function showFormError(message) {
  const box = $('#form-error');
  box.textContent = message;
  box.hidden = !message;
}

async function placeOrder(event) {
  event.preventDefault();
  if (state.placing) return;
  showFormError('');
  const problems = Object.keys(fields).filter((name) => validateField(name));
  if (problems.length) {
    fields[problems[0]].input().focus();
    showFormError(problems.length === 1 ? 'Please correct the field marked in red.' : `Please correct the ${problems.length} fields marked in red.`);
    return;
  }
  const lines = state.cart
    .filter((line) => state.byId.has(line.id))
    .map((line) => {
      const product = state.byId.get(line.id);
      return { id: product.id, title: product.title, quantity: line.quantity, unitPrice: product.unitPrice };
    });
  if (!lines.length) {
    showFormError('Your cart is empty.');
    return;
  }
  const shippingAddress = {
    address: $('#address').value.trim(),
    city: $('#city').value.trim(),
    postCode: $('#post-code').value.trim(),
  };
  const body = {
    basket: lines.map(({ id, title, quantity }) => ({ id, title, quantity })),
    shippingAddress,
    paymentDetail: {
      cardNumber: $('#card-number').value.replace(/\s+/g, ''),
      cardholderName: $('#cardholder').value.trim(),
      expiry: $('#expiry').value.trim(),
      ccv: $('#ccv').value.trim(),
    },
  };
  state.idempotencyKey ??= newKey();
  const button = $('#confirm-payment');
  state.placing = true;
  button.disabled = true;
  button.classList.add('busy');
  button.textContent = 'Placing your order…';
  try {
    const response = await fetch('/orders', {
      method: 'POST',
      headers: { 'Content-Type': 'application/json', Accept: 'application/json', 'Idempotency-Key': state.idempotencyKey },
      body: JSON.stringify(body),
    });
    const reply = await response.json().catch(() => null);
    if (response.ok && reply?.orderId) {
      const items = lines.reduce((sum, l) => sum + cents(l.unitPrice) * l.quantity, 0);
      orders.put({
        orderId: reply.orderId,
        clientCallbackUrl: reply.clientCallbackUrl,
        placedAt: new Date().toISOString(),
        lines,
        shippingAddress,
        itemsCents: items,
        shippingCents: shippingCents(shippingAddress.postCode),
        final: null,
      });
      saveJSON(PENDING_KEY, reply.orderId);
      state.cart = [];
      saveCart();
      state.idempotencyKey = null;
      for (const id of ['#card-number', '#ccv']) $(id).value = '';
      renderCart();
      location.hash = `#/order/${reply.orderId}`;
    } else {
      if (response.status >= 400 && response.status < 500) state.idempotencyKey = null;
      showFormError(reply?.message || `The shop could not place the order (HTTP ${response.status}). Please try again.`);
    }
  } catch {
    showFormError('Could not reach the shop. Check your connection and press Confirm Payment again.');
  } finally {
    state.placing = false;
    button.disabled = false;
    button.classList.remove('busy');
    button.textContent = 'Confirm Payment';
  }
}

// ---------------------------------------------------------------------------------------------------------------
// One order's progress

const STEPS = [
  { step: 'reserveInventory', todo: 'Reserve your pets', done: 'Pets reserved', undone: 'Reservation released: the pets are back in stock' },
  { step: 'calculateShipping', todo: 'Quote shipping', done: 'Shipping quoted' },
  { step: 'processPayment', todo: 'Take the payment', done: 'Payment accepted', undone: 'Payment refunded' },
  { step: 'completeOrder', todo: 'Complete the order', done: 'Order completed' },
];

/** Follows one order: the WebSocket (with reconnects), then the paced display of its events. */
class OrderFollower {
  constructor(orderId) {
    this.orderId = orderId;
    this.record = orders.get(orderId);
    this.received = new Map(); // seq -> event
    this.shownSeq = 0;
    this.closed = false;
    this.finalSeen = false;
    this.attempts = 0;
    this.ws = null;
    this.paceTimer = null;
    this.pollTimer = null;
  }

  start() {
    if (this.record?.clientCallbackUrl) this.connect();
    else this.poll(); // opened in another browser: no token here, so read the order's history instead
  }

  stop() {
    this.closed = true;
    clearTimeout(this.paceTimer);
    clearTimeout(this.reconnectTimer);
    clearTimeout(this.pollTimer);
    if (this.ws) {
      this.ws.onclose = null;
      this.ws.close();
    }
  }

  setConnection(text, kind = '') {
    const status = $('#connection-status');
    status.textContent = text;
    status.dataset.state = kind;
  }

  connect() {
    if (this.closed || this.finalSeen) return;
    this.setConnection(this.attempts ? 'Reconnecting…' : 'Connecting…', 'connecting');
    let ws;
    try {
      ws = new WebSocket(this.record.clientCallbackUrl);
    } catch {
      this.retryLater();
      return;
    }
    this.ws = ws;
    ws.onopen = () => {
      this.attempts = 0;
      this.setConnection('Live', 'live');
    };
    ws.onmessage = (message) => {
      let event;
      try {
        event = JSON.parse(message.data);
      } catch {
        return;
      }
      if (event && typeof event.seq === 'number' && (!event.orderId || event.orderId === this.orderId)) this.receive(event);
    };
    ws.onerror = () => {};
    ws.onclose = () => {
      this.ws = null;
      if (this.closed || this.finalSeen) return;
      this.retryLater();
    };
  }

  retryLater() {
    this.attempts += 1;
    this.setConnection('Connection lost, reconnecting…', 'lost');
    // After a few failed tries, also read the recorded history over HTTP meanwhile.
    if (this.attempts >= 3) this.poll(true);
    const delay = Math.min(5000, 500 * 2 ** Math.min(this.attempts, 4));
    this.reconnectTimer = setTimeout(() => this.connect(), delay);
  }

  async poll(once = false) {
    if (this.closed || this.finalSeen) return;
    try {
      const response = await fetch(`/orders/${encodeURIComponent(this.orderId)}`, { cache: 'no-store' });
      if (response.status === 404) {
        this.setConnection('Unknown order', 'lost');
        showUnknownOrder(this.orderId);
        return;
      }
      if (response.ok) {
        const order = await response.json();
        if (!this.record) {
          this.record = {
            orderId: this.orderId,
            lines: order.basket ?? [],
            shippingAddress: order.shippingAddress,
            shippingCents: order.shippingCost != null ? cents(order.shippingCost) : null,
          };
          renderSummary(this.record);
        }
        for (const event of order.history ?? []) {
          const copy = { ...event };
          if (copy.status === 'success' && copy.amountPaid == null && order.paymentAmount != null) copy.amountPaid = order.paymentAmount;
          if (copy.createdOn == null) copy.createdOn = order.createdOn;
          this.receive(copy);
        }
        if (!this.record.clientCallbackUrl) this.setConnection('Updating every few seconds', 'live');
      }
    } catch {
      /* try again below */
    }
    if (!once && !this.closed && !this.finalSeen) this.pollTimer = setTimeout(() => this.poll(), 2000);
  }

  receive(event) {
    if (this.received.has(event.seq)) return;
    this.received.set(event.seq, event);
    if (event.status === 'success' || event.status === 'failed') {
      this.finalSeen = true;
      if (this.ws) {
        this.ws.onclose = null;
        this.ws.close();
        this.ws = null;
      }
      clearTimeout(this.reconnectTimer);
      clearTimeout(this.pollTimer);
      if (this.record) orders.update(this.orderId, { final: event });
      if (loadJSON(PENDING_KEY, null) === this.orderId) saveJSON(PENDING_KEY, null);
    }
    this.pump();
  }

  /** Shows the next received event after a short pause, so each step can be seen. */
  pump() {
    if (this.paceTimer || this.closed) return;
    const next = [...this.received.keys()].filter((seq) => seq > this.shownSeq).sort((a, b) => a - b)[0];
    if (next === undefined) return;
    this.shownSeq = next;
    renderProgress(this);
    this.paceTimer = setTimeout(() => {
      this.paceTimer = null;
      this.pump();
    }, STEP_PACE_MS);
  }

  shownEvents() {
    return [...this.received.values()].filter((e) => e.seq <= this.shownSeq).sort((a, b) => a.seq - b.seq);
  }
}

function renderSummary(record) {
  const list = $('#order-summary');
  const lines = record?.lines ?? [];
  const items = lines.reduce((sum, l) => sum + cents(l.unitPrice ?? 0) * l.quantity, 0);
  list.replaceChildren(
    ...lines.map((l) =>
      el('li', {}, el('span', {}, `${l.quantity} × ${l.title ?? l.id}`), el('span', {}, money(cents(l.unitPrice ?? 0) * l.quantity)))),
    record?.shippingCents != null ? el('li', {}, el('span', {}, 'Shipping'), el('span', {}, money(record.shippingCents))) : null,
    lines.length && record?.shippingCents != null
      ? el('li', { class: 'grand' }, el('span', {}, 'Total'), el('span', {}, money(items + record.shippingCents)))
      : null,
  );
  const a = record?.shippingAddress;
  $('#order-address').textContent = a ? `Ship to ${a.address}, ${a.city} ${a.postCode}` : '';
}

function progressItem(kind, text, detail, testid, at) {
  return el('li', { class: `progress-item ${kind}`, 'data-state': kind.split(' ')[0], 'data-testid': testid },
    el('span', { class: 'progress-icon' }),
    el('div', { class: 'progress-text' },
      el('span', { class: 'progress-label' }, text),
      detail ? el('span', { class: 'progress-detail' }, detail) : null),
    at ? el('time', { class: 'progress-time muted small', datetime: at }, new Date(at).toLocaleTimeString()) : null);
}

function renderProgress(follower) {
  const events = follower.shownEvents();
  const record = follower.record;
  const list = $('#progress');
  const status = new Map(); // step -> {kind, detail, at}
  const undone = [];
  let started = null;
  let final = null;
  let attention = false;
  for (const e of events) {
    if (e.status === 'started') started = e;
    else if (e.status === 'stepSucceeded' && e.step) status.set(e.step, { kind: 'done', at: e.at });
    else if (e.status === 'stepFailed' && e.step) status.set(e.step, { kind: 'failed', detail: e.message, at: e.at });
    else if (e.status === 'stepRetrying' && e.step) status.set(e.step, { kind: 'retrying', detail: e.message || 'No answer yet, trying again', at: e.at });
    else if (e.status === 'compensated' && e.step) undone.push(e);
    else if (e.status === 'needsAttention') attention = true;
    else if (e.status === 'success' || e.status === 'failed') final = e;
  }
  const failedSomewhere = [...status.values()].some((s) => s.kind === 'failed') || final?.status === 'failed';
  const items = [progressItem(started || events.length ? 'done' : 'active', 'Order received', null, 'progress-started', started?.at)];
  let activeShown = false;
  for (const def of STEPS) {
    const s = status.get(def.step);
    if (s) {
      let detail = s.detail;
      if (def.step === 'calculateShipping' && s.kind === 'done' && record?.shippingCents != null) detail = money(record.shippingCents);
      const label = s.kind === 'done' ? def.done : s.kind === 'failed' ? `${def.todo}: failed` : `${def.todo}: retrying`;
      items.push(progressItem(s.kind, label, detail, `progress-${def.step}`, s.at));
    } else {
      const kind = !failedSomewhere && !final && !activeShown && started ? 'active' : failedSomewhere ? 'skipped' : 'pending';
      if (kind === 'active') activeShown = true;
      items.push(progressItem(kind, def.todo, kind === 'skipped' ? 'Not needed' : null, `progress-${def.step}`));
    }
  }
  for (const e of undone) {
    const def = STEPS.find((d) => d.step === e.step);
    items.push(progressItem('undone', def?.undone ?? `${e.step} undone`, null, `progress-compensated-${e.step}`, e.at));
  }
  if (attention) items.push(progressItem('warn', 'Waiting for our team', 'An automatic undo keeps failing; an operator has been alerted.', 'progress-attention'));
  if (final?.status === 'success') {
    items.push(progressItem('done final', `Paid ${money(cents(final.amountPaid ?? 0))}`, null, 'progress-success', final.at));
  } else if (final?.status === 'failed') {
    items.push(progressItem('failed final', 'Order cancelled', final.message, 'progress-failed', final.at));
  }
  // Keep the items that did not change (so only new ones fade in), replace the others.
  const old = new Map([...list.children].map((item) => [item.dataset.testid, item]));
  const kept = items.map((item) => {
    const kind = item.classList[1];
    item.querySelector('.progress-icon').innerHTML = { done: icons.done, failed: icons.failed, undone: icons.undo, retrying: icons.retry, warn: icons.warn, active: icons.active }[kind] ?? '';
    const previous = old.get(item.dataset.testid);
    return previous && previous.outerHTML === item.outerHTML ? previous : item;
  });
  // Remove the replaced ones first, so the kept ones never move (moving an element restarts its animation).
  for (const item of [...list.children]) if (!kept.includes(item)) item.remove();
  kept.forEach((item, index) => {
    if (list.children[index] !== item) list.insertBefore(item, list.children[index] ?? null);
  });
  $('#view-order').dataset.state = final ? final.status : attention ? 'attention' : 'running';
  $('#attention').hidden = !attention || Boolean(final);
  if (final) showOutcome(follower, final, undone);
}

function showOutcome(follower, final, undone) {
  follower.setConnection('Finished', 'done');
  const confirmation = $('#confirmation');
  const failure = $('#failure');
  if (final.status === 'success') {
    const amount = cents(final.amountPaid ?? 0);
    $('#confirmation-message').textContent = `You have paid an amount of ${money(amount)}`;
    $('#confirmation-reference').textContent = follower.orderId;
    $('#confirmation-date').textContent = final.createdOn ? `Ordered on ${formatTime(final.createdOn)}` : '';
    confirmation.hidden = false;
    failure.hidden = true;
    $('#order-title').textContent = 'Order confirmed';
    document.title = 'Order confirmed · AWSomePets';
  } else {
    $('#failure-message').textContent = final.message || 'The order could not be completed.';
    const refunded = undone.some((e) => e.step === 'processPayment');
    const released = undone.some((e) => e.step === 'reserveInventory');
    $('#failure-explanation').textContent =
      (refunded ? 'Your payment has been refunded. ' : 'You have not been charged. ') +
      (released ? 'The pets you picked are back in stock. ' : '') +
      'You can check your details and try again.';
    $('#try-again').hidden = !follower.record?.lines?.length;
    failure.hidden = false;
    confirmation.hidden = true;
    $('#order-title').textContent = 'Order not completed';
    document.title = 'Order not completed · AWSomePets';
  }
  // The outcome changes stock levels.
  loadCatalogue();
  const heading = final.status === 'success' ? confirmation : failure;
  if (!heading.dataset.announced) {
    heading.dataset.announced = '1';
    heading.setAttribute('tabindex', '-1');
    heading.focus({ preventScroll: true });
    heading.scrollIntoView({ block: 'nearest', behavior: 'smooth' });
  }
}

function showUnknownOrder(orderId) {
  $('#failure-message').textContent = `There is no order ${orderId}.`;
  $('#failure-explanation').textContent = '';
  $('#try-again').hidden = true;
  $('#failure').hidden = false;
}

function tryAgain() {
  const record = state.follower?.record;
  if (!record?.lines) return;
  state.cart = record.lines.map((l) => ({ id: l.id, quantity: l.quantity }));
  saveCart();
  renderCart();
  location.hash = '#/checkout';
}

// ---------------------------------------------------------------------------------------------------------------
// Views

function showView(name, title) {
  for (const view of ['shop', 'checkout', 'order']) $(`#view-${view}`).hidden = view !== name;
  document.title = title ? `${title} · AWSomePets` : 'AWSomePets';
  document.body.dataset.view = name;
}

function route() {
  if (state.follower) {
    state.follower.stop();
    state.follower = null;
  }
  const hash = location.hash || '#/';
  const order = /^#\/order\/([0-9A-Za-z-]{8,64})$/.exec(hash);
  if (order) {
    const orderId = order[1].toLowerCase();
    showView('order', 'Your order');
    const view = $('#view-order');
    view.dataset.orderId = orderId;
    view.dataset.state = 'running';
    for (const id of ['#confirmation', '#failure', '#attention']) {
      $(id).hidden = true;
      delete $(id).dataset.announced;
    }
    $('#order-title').textContent = 'Your order';
    $('#order-id').textContent = orderId;
    $('#progress').replaceChildren();
    const follower = new OrderFollower(orderId);
    state.follower = follower;
    renderSummary(follower.record);
    renderProgress(follower);
    follower.start();
    window.scrollTo(0, 0);
    return;
  }
  if (hash === '#/checkout') {
    if (!state.cart.length) {
      location.replace('#/');
      return;
    }
    showView('checkout', 'Checkout');
    renderCheckout();
    window.scrollTo(0, 0);
    return;
  }
  showView('shop');
  const pending = loadJSON(PENDING_KEY, null);
  $('#pending-banner').hidden = !pending;
  if (pending) $('#pending-link').href = `#/order/${pending}`;
  if (state.catalogueLoaded) loadCatalogue();
  if (hash === '#/cart') {
    $('#cart').scrollIntoView({ behavior: 'smooth', block: 'start' });
    $('#cart').focus({ preventScroll: true });
  } else {
    window.scrollTo(0, 0);
  }
}

function init() {
  $('#checkout-button').addEventListener('click', () => {
    location.hash = '#/checkout';
  });
  $('#cart-bar-checkout').addEventListener('click', () => {
    location.hash = '#/checkout';
  });
  $('#checkout-form').addEventListener('submit', placeOrder);
  $('#try-again').addEventListener('click', tryAgain);
  for (const name of Object.keys(fields)) {
    const input = fields[name].input();
    input.addEventListener('blur', () => {
      if (input.value || input.dataset.touched) validateField(name);
      input.dataset.touched = '1';
    });
    input.addEventListener('input', (event) => {
      state.idempotencyKey = null; // a changed order is a new attempt
      if (name === 'card-number') formatCardNumber(input);
      if (name === 'expiry') formatExpiry(input, event);
      if (name === 'ccv') input.value = input.value.replace(/\D/g, '').slice(0, 3);
      if (name === 'post-code') renderCheckout();
      if (input.getAttribute('aria-invalid') === 'true') validateField(name);
    });
  }
  // Another tab changed the cart.
  window.addEventListener('storage', (event) => {
    if (event.key === CART_KEY) {
      state.cart = loadJSON(CART_KEY, []);
      renderCart();
      renderCatalogue();
    }
  });
  window.addEventListener('hashchange', route);
  // The phone's cart bar is not needed while the cart itself is on screen.
  if ('IntersectionObserver' in window) {
    new IntersectionObserver(([entry]) => document.body.classList.toggle('cart-in-view', entry.isIntersecting))
      .observe($('#cart'));
  }

  // Resume an unfinished order after a reload that lost the hash (as the seed's pending-result trick did).
  const pending = loadJSON(PENDING_KEY, null);
  if ((!location.hash || location.hash === '#/') && pending && orders.get(pending) && !orders.get(pending).final) {
    location.replace(`#/order/${pending}`);
  }
  renderCart();
  route();
  loadCatalogue();
  scheduleCatalogueRefresh();
}

// For the browser tests and for debugging in the console.
window.awsomepets = {
  state,
  dropConnection: () => state.follower?.ws?.close(),
};

init();
